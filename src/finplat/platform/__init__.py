"""The whole platform in one command: the stack, the replay feed and every service, supervised."""
