"""Friendly, random run names ("brave-otter") that people can say out loud."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber brave calm clever crimson daring eager gentle golden happy hidden icy jolly keen "
    "lively lucky mellow misty nimble noble olive proud quick quiet rapid rosy shy silver "
    "smooth solid steady sunny swift tidy vivid warm wise witty young zesty"
).split()
_ANIMALS = (
    "badger bison crane dingo eagle falcon ferret gecko heron ibis jaguar koala lemur lynx "
    "magpie marten moose newt ocelot orca otter panda puffin quail raven salmon seal shrew "
    "stork tapir tern toucan viper walrus weasel wombat yak zebra"
).split()


def run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"
