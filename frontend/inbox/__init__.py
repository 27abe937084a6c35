"""The read-only web inbox: conversations and threads as people read them."""
