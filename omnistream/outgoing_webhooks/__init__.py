"""Outgoing webhooks: endpoints that receive the organisation's events as signed POSTs."""
