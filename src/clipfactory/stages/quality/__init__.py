"""Quality stages: keep or drop clips by the scores of the analysis pass."""
