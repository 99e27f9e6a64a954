"""The layer every framework adapter builds on (internal; see CONTRIBUTING.md)."""
