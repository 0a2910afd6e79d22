"""Run folders: what a run writes (folder), who may write it (lock), its checkpoints, prediction tables and
figures (checkpoints, results, plots). The folder contract's names are importable from here.
"""

from facedyn.runs.folder import (BLENDSHAPES_GRAPH_FILE, CHECKPOINT_DIR, CONFIG_FILE, HISTORY_FILE, LAST_CHECKPOINT,
                                 METRICS_FILE, OVERRIDES_FILE, RUN_FORMAT, RUN_MARKERS, STATUS_FILE, RunFiles,
                                 find_run_dirs, last_checkpoint, now_iso, read_json, read_run_files,
                                 stage_checkpoint, write_status)
from facedyn.runs.lock import (LOCK_FILE, RunFolderInUse, claim_new_folder, owned, owner_alive,
                               process_alive)

__all__ = ["BLENDSHAPES_GRAPH_FILE", "CHECKPOINT_DIR", "CONFIG_FILE", "HISTORY_FILE", "LAST_CHECKPOINT", "LOCK_FILE",
           "METRICS_FILE", "OVERRIDES_FILE", "RUN_FORMAT", "RUN_MARKERS", "STATUS_FILE", "RunFiles", "RunFolderInUse",
           "claim_new_folder", "find_run_dirs", "last_checkpoint", "now_iso", "owned", "owner_alive", "process_alive",
           "read_json", "read_run_files", "stage_checkpoint", "write_status"]
