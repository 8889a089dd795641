"""The model server process: settings, the data plane and its REST adapter."""
