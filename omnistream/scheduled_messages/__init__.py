"""Scheduled messages: an agent's message sent later, at its time, by the worker."""
