"""SLA: policies with response and resolution targets, the clocks they run, and breaches."""
