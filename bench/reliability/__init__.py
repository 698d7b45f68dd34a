"""the fault suite's harness: a synthetic firehose (`stream`, `delivery`), a world of real
parts (`world`, `turbopuffer`, `api`), the running service (`harness`), the judgement
against a fault-free run and an engine oracle (`check`), the scenarios (`scenarios`) and
the report (`report`, `python -m bench reliability`). the tests run it at CI size."""
