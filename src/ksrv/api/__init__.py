"""Resources exactly in KServe's schema: parse, default, validate. camelCase only as aliases."""
