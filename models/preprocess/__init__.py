"""Rendering the unlabelled training set with nerfstudio: the job runner, the commands, the CLI check, the plan."""
