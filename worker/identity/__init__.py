"""who is asking, and what their repo says: the parts that talk to the AT Protocol network.

- `auth`: `Authenticator`, the viewer's DID from a service-auth JWT or plyr.fm's
  internal token;
- `jwt`: verifying a service-auth JWT against the issuer's DID key;
- `did_resolver`: the issuer's signing key from did:plc / did:web, cached and bounded;
- `pds`: a playlist's list record read from its owner's PDS (`PdsRecords`), bounded
  before it is parsed (`pds_decode`), through `pds_guard`; failing hosts and refused
  records remembered with a backoff (`pds_backoff` the policy, `pds_failures` the memory);
- `pds_lists`: the records of a reconcile pass, per host and in all bounded.

everything here handles input from anyone on the network: every fetch is bounded
in time, size and concurrency.
"""
