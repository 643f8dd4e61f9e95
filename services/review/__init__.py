"""Review: runs each dossier through its workflow and routes the work to officers."""
