"""Pure protocol rules, no I/O: one module per specification."""
