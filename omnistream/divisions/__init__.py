"""Divisions: teams of agents that conversations are routed to."""
