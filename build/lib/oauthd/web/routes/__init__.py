"""One module per endpoint. Each `register(app, state)` adds its routes and returns the metadata
members it implements; discovery is registered last, from everything the others contributed."""
