"""`python -m bench abuse`: each issue-16 attack against the real API, beside a quiet run.

the API runs as `plyr-recs api` runs it (uvicorn, `server_config`, one process:
`bench.abuse.server`) over a warm cache; its PLC directory and DNS server
are loopback stand-ins in this process (a slow 404 directory, a name server that
never answers `silent.example`). legitimate owners ask for their playlists at a
fixed rate through plyr.fm's backend's way in while each attack runs for a fixed
time; the table gives each phase's legitimate answers (correct = the same body
as in the quiet phase), their p99 beside the quiet one, and what the server used.
"""
