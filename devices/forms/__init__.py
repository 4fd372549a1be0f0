"""Forms of the devices app, one module per entity."""
