"""the only Redis I/O for the cache contract of `engine.cache`.

- `cache`: `RecommendationCache`, entries, per-playlist state, delete markers, with
  their TTLs (the key families are registered in `engine.keys`);
- `reads`: `CoalescedReads`, the API's cache reads of one event-loop turn as one MGET;
- `scripts`: the server-side scripts (the fenced cache write, the lock's renew and
  release, the turbopuffer budget's take), each one round trip.
"""
