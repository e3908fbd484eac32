"""Thin handlers, one module per resource: decode -> service -> encode."""
