"""the work `plyr-recs worker` runs, and the one path it shares with the API.

- `playlist`: the docket tasks `recompute_playlist` and `forget_playlist` (the
  contract the consumer enqueues by is `jetstream.contract`); `TASKS`, `PLAYLIST_TASKS`;
- `recompute`: `Recommender`, from "this playlist, this version, these tracks" to a
  cache entry (used by the tasks and by the API on a miss);
- `playlist_lock`: one run per playlist at a time, a leased lock in Redis;
- `services`: `Services` (cache, catalog, store, recommender), opened from settings and
  installed for the tasks' docket dependency.
"""
