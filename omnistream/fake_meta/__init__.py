"""A stand-in for Meta's Graph API, for tests and for `omnistream dev --fake-meta`.

It answers the calls OmniStream makes with the shapes Meta answers with (and Meta's error
shapes when told to fail), records every request it got, and, when configured with a webhook
URL and an app secret, sends the signed status webhooks Meta would send after a message goes
out (sent, delivered, read). It is a real HTTP server: run it with
`python -m granian --interface asgi omnistream.fake_meta.app:app`, or `omnistream fake-meta`.

Control endpoints, under /_stand-in: `GET requests` (what it received, `?path_contains=`),
`POST failures` (answer the next matching requests with an error), `POST config`, `POST reset`.
"""
