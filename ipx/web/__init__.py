"""Server-rendered pages (Jinja2 + plain CSS); every page works without JavaScript."""
