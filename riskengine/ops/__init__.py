"""The ops layer: operating an installation — audit log maintenance (compaction, retention)."""
