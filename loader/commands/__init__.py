"""One module per command (or command group); loader.cli registers them."""
