"""the HTTP API: `GET /playlists/{playlist_id}/recommendations`, `/health`, `/metrics`.

- `app`: `create_app(services, ...)`, `run(settings)` (uvicorn), `server_config`;
- `answers`: what to answer for a playlist (cache, inline compute, degraded), the
  one decision every request goes through;
- `metrics`: the Prometheus registry of one app;
- `schema`: the OpenAPI document served at `/openapi.json`.
"""
