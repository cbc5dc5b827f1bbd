"""Works, signed registration statements, signing keys and the transparency log."""
