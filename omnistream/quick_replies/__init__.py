"""Quick replies: canned answers agents insert by shortcut."""
