"""HTTP/1.1 transport shared by the model server, the gateway and the management API."""
