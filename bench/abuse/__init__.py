"""`python -m bench abuse`: each issue-16 and issue-23 attack against the real API, and
the components the API table cannot reach, each beside a quiet run.

the API runs as `plyr-recs api` runs it (uvicorn, `server_config`, one process:
`bench.abuse.server`) over a warm cache, as behind Fly's proxy (`Fly-Client-IP`
trusted from loopback); its PLC directory, DNS server, did:web hosts and the owners'
PDSes are loopback stand-ins in this process (a slow directory that knows only the
legitimate JWT users, a name server that never answers `silent.example`, did:web
hosts that never finish TLS beside the legitimate did:web users' host with real TLS,
an honest PDS, a hostile one and a hanging one: `bench.abuse.pds_world`). legitimate
owners ask for their playlists at a fixed rate, first-time and returning did:plc and
did:web users sign in, and owners ask for playlists not cached yet
(`bench.abuse.legit`) while each attack (`bench.abuse.attacks`) runs for a fixed
time; the table gives each phase's legitimate outcomes, the owners' p99 beside the
quiet window's, what the server used, and a verdict (`bench.abuse.phase`).

the components table (`bench.abuse.components`) runs the consumer, the reconcile
pass's reads and the editor page for real on loopback, once quiet and once attacked.
`--only ROW[,ROW]` runs some rows alone (`--list` names them).
"""
