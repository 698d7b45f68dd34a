"""fresh uploads: tracks plyr.fm has ingested whose CLAP embedding is not computed yet.

in plyr.fm a track's embedding is computed after the upload, so for a while a
track is in the database (resolvable, hydratable) and absent from turbopuffer.
a playlist made only of such tracks has nothing to recommend from: the API
answers `available: false` and the editor hides its recommended section. the
generated catalogue gives every track a vector, so the editor page adds a few
tracks like these (ids past the catalogue's, so the vector store has none).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from engine.eligibility import TrackRecord
from jetstream.syntax import tid
from worker.demo import names
from worker.demo.catalogue import IMAGE_HOST, TRACK_COLLECTION, DemoCatalogue
from worker.demo.identifiers import cid_for_bytes

FRESH_UPLOADS: Final = 4
UPLOAD_GAP_US: Final = 90_000_000  # the uploads came a minute and a half apart


def fresh_uploads(
    catalogue: DemoCatalogue, *, time_us: int, count: int = FRESH_UPLOADS
) -> tuple[TrackRecord, ...]:
    """`count` published tracks by active artists, uploaded just before `time_us`,
    with ids no track of the catalogue (and so of its vector store) has."""
    if not 1 <= count <= 100:
        raise ValueError("count must be within 1..100")
    seed = catalogue.params.seed
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x75706C64]))
    active = [i for i, artist in enumerate(catalogue.artists) if not artist.deactivated]
    first_id = int(catalogue.track_ids.max()) + 1 if len(catalogue.track_ids) else 1
    titles = names.track_titles(rng, count)
    uploads = []
    for offset, title in enumerate(titles):
        artist = catalogue.artists[active[int(rng.integers(len(active)))]]
        rkey = tid(time_us - (count - offset) * UPLOAD_GAP_US, (seed + 3) % 1024)
        uri = f"at://{artist.did}/{TRACK_COLLECTION}/{rkey}"
        uploads.append(
            TrackRecord(
                id=first_id + offset,
                title=title,
                artist_did=artist.did,
                record_uri=uri,
                record_cid=cid_for_bytes(f"{artist.did} {rkey} {title}".encode()),
                image_url=f"{IMAGE_HOST}/tracks/{rkey}.webp",
                visibility="public",
                publish_state="published",
            )
        )
    return tuple(uploads)
