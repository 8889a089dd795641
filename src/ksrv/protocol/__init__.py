"""What travels on the wire: tensor types, payload types and codecs. No I/O here."""
