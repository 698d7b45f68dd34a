"""`python -m bench abuse`: each issue-16 and issue-23 attack against the real API,
beside a quiet run.

the API runs as `plyr-recs api` runs it (uvicorn, `server_config`, one process:
`bench.abuse.server`) over a warm cache, as behind Fly's proxy (`Fly-Client-IP`
trusted from loopback); its PLC directory and DNS server are loopback stand-ins in
this process (a slow directory that knows only the legitimate JWT users, a name
server that never answers `silent.example`, did:web hosts that never finish TLS).
legitimate owners ask for their playlists at a fixed rate through plyr.fm's
backend's way in, and first-time and returning JWT users sign in (`bench.abuse.people`),
while each attack runs for a fixed time; the table gives each phase's legitimate
answers (correct = the same body as in the quiet phase), the JWT users signed in,
the owners' p99 beside the quiet one, and what the server used.
"""
