"""The price service's stores, one adapter per external system."""
