"""One module per framework; each subclasses `ksrv.model.base.Model`."""
