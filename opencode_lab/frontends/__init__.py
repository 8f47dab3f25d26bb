"""Front ends over the session: the DataFrame API (`Lab`), the IPython magics, rich display and the CLI."""
