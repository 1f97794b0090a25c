"""Lambda entry points of the control plane (api, scheduler, monitor): the composition roots."""
