"""Genomes: normalization-activation layers as DAGs of primitives, their text form and mutations.

A genome is a DAG over four initial nodes (the input `x`, a constant `zero`, and the per-channel
vectors `v0` (init 0) and `v1` (init 1)) and up to `max_nodes` intermediate nodes, each applying
one primitive (`keras_norms.ops.evolved`) to one or two earlier nodes; the last node is the
output. Paper: Liu, Brock, Simonyan, Le, "Evolving Normalization-Activation Layers", arXiv 2004.02967.

Genomes are kept canonical: nodes the output does not use are dropped and equal nodes are
merged, in the order a post-order walk of the output's expression visits them. The text form is
that expression, e.g. `div(x, max(sqrt(variance_batch(x)), add(mul(v1, x), sqrt(variance_instance(x)))))`,
so `parse(str(genome)) == genome` and `str(parse(text)) == text` for any canonical text.

>>> genome = parse("div(mul(x, sigmoid(mul(v1, x))), sqrt(variance_group(x)))")
>>> str(genome)
'div(mul(x, sigmoid(mul(v1, x))), sqrt(variance_group(x)))'
"""

import dataclasses
import json
import os
import random
import re
from collections.abc import Iterable, Sequence

from keras_norms.ops.evolved import AGGREGATES, ELEMENTWISE, INPUTS, split_aggregate

ARITY: dict[str, int] = {**ELEMENTWISE, **dict.fromkeys(AGGREGATES, 1)}
PRIMITIVES: tuple[str, ...] = tuple(ARITY)
BATCH_AGGREGATES: tuple[str, ...] = tuple(name for name in AGGREGATES if split_aggregate(name)[1] == "batch")
SAMPLE_PRIMITIVES: tuple[str, ...] = tuple(name for name in PRIMITIVES if name not in BATCH_AGGREGATES)
DEFAULT_MAX_NODES = 10

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|[(),])")


@dataclasses.dataclass(frozen=True)
class Node:
    """One intermediate node: a primitive and the indices of its inputs (0-3: x, zero, v0, v1)."""

    primitive: str
    inputs: tuple[int, ...]


@dataclasses.dataclass(frozen=True, eq=True)
class Genome:
    """A canonical normalization-activation graph; build it with `parse` or `Genome.from_nodes`.

    `nodes[i]` is node `4 + i`; the last node is the output (with no nodes the output is `x`).
    """

    nodes: tuple[Node, ...]

    @classmethod
    def from_nodes(cls, nodes: Iterable[Node | tuple[str, Sequence[int]]]) -> "Genome":
        """The canonical genome of any DAG whose last node is the output (checked)."""
        checked = [node if isinstance(node, Node) else Node(str(node[0]), tuple(node[1])) for node in nodes]
        for position, node in enumerate(checked):
            _check_node(node, len(INPUTS) + position)
        if not checked:
            return cls(())
        canonical: list[Node] = []
        index_of: dict[Node, int] = {}

        def visit(index: int) -> int:
            if index < len(INPUTS):
                return index
            node = checked[index - len(INPUTS)]
            key = Node(node.primitive, tuple(visit(i) for i in node.inputs))
            if key not in index_of:
                canonical.append(key)
                index_of[key] = len(INPUTS) + len(canonical) - 1
            return index_of[key]

        visit(len(INPUTS) + len(checked) - 1)
        return cls(tuple(canonical))

    def __str__(self) -> str:
        return self.expression(len(INPUTS) + len(self.nodes) - 1)

    def expression(self, index: int) -> str:
        """The text form of node `index`'s value."""
        if index < len(INPUTS):
            return INPUTS[index]
        node = self.nodes[index - len(INPUTS)]
        return f"{node.primitive}({', '.join(self.expression(i) for i in node.inputs)})"

    def __repr__(self) -> str:
        return f"Genome({str(self)!r})"

    @property
    def primitives(self) -> set[str]:
        return {node.primitive for node in self.nodes}

    @property
    def uses_batch(self) -> bool:
        """Whether a batch aggregate appears (the layer then keeps moving statistics)."""
        return bool(self.primitives & set(BATCH_AGGREGATES))

    @property
    def uses_groups(self) -> bool:
        return any(split_aggregate(p)[1] == "group" for p in self.primitives if p in AGGREGATES)

    def uses_input(self, name: str) -> bool:
        """Whether the initial node `name` ("x", "zero", "v0", "v1") feeds the output."""
        index = INPUTS.index(name)
        if not self.nodes:
            return index == 0
        return any(index in node.inputs for node in self.nodes)

    def to_json(self) -> dict:
        return {"genome": str(self), "nodes": [[n.primitive, list(n.inputs)] for n in self.nodes]}


def _check_node(node: Node, index: int) -> None:
    if node.primitive not in ARITY:
        raise ValueError(f"Unknown primitive {node.primitive!r}. Expected one of {sorted(PRIMITIVES)}")
    if len(node.inputs) != ARITY[node.primitive]:
        raise ValueError(
            f"`{node.primitive}` takes {ARITY[node.primitive]} input(s). Received: {len(node.inputs)} ({node.inputs})"
        )
    for i in node.inputs:
        if not (isinstance(i, int) and 0 <= i < index):
            raise ValueError(f"Node {index} may only read earlier nodes (0 to {index - 1}). Received input {i!r}")


def parse(text: "str | Genome") -> Genome:
    """The genome of a text form such as `div(x, sqrt(variance_batch(x)))`.

    Raises ValueError naming the position of the first thing that is not a primitive, an initial
    node (`x`, `zero`, `v0`, `v1`), a parenthesis or a comma, and on wrong arities.
    """
    if isinstance(text, Genome):
        return text
    if not isinstance(text, str):
        raise TypeError(f"`genome` must be a Genome or its text form. Received: {text!r}")
    tokens: list[tuple[str, int]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position:].strip() == "":
                break
            raise ValueError(
                f"Cannot parse genome {text!r}: unexpected {text[position : position + 10]!r} at {position}"
            )
        tokens.append((match.group(1), match.start(1)))
        position = match.end()
    nodes: list[Node] = []
    index_of: dict[Node, int] = {}
    cursor = 0

    def expect(token: str) -> None:
        nonlocal cursor
        if cursor >= len(tokens) or tokens[cursor][0] != token:
            found = tokens[cursor] if cursor < len(tokens) else ("end of text", len(text))
            raise ValueError(f"Cannot parse genome {text!r}: expected {token!r}, found {found[0]!r} at {found[1]}")
        cursor += 1

    def expression() -> int:
        nonlocal cursor
        if cursor >= len(tokens):
            raise ValueError(f"Cannot parse genome {text!r}: unexpected end of text")
        name, at = tokens[cursor]
        cursor += 1
        if name in INPUTS:
            return INPUTS.index(name)
        if name not in ARITY:
            raise ValueError(
                f"Cannot parse genome {text!r}: unknown name {name!r} at {at}. "
                f"Expected one of {list(INPUTS)} or a primitive: {sorted(PRIMITIVES)}"
            )
        expect("(")
        inputs = [expression()]
        while cursor < len(tokens) and tokens[cursor][0] == ",":
            cursor += 1
            inputs.append(expression())
        expect(")")
        if len(inputs) != ARITY[name]:
            raise ValueError(
                f"Cannot parse genome {text!r}: `{name}` at {at} takes {ARITY[name]} input(s), got {len(inputs)}"
            )
        node = Node(name, tuple(inputs))
        if node not in index_of:
            nodes.append(node)
            index_of[node] = len(INPUTS) + len(nodes) - 1
        return index_of[node]

    output = expression()
    if cursor != len(tokens):
        raise ValueError(f"Cannot parse genome {text!r}: unexpected {tokens[cursor][0]!r} at {tokens[cursor][1]}")
    if output < len(INPUTS):
        if output != 0:
            raise ValueError(f"A genome's output must depend on `x`. Received: {text!r}")
        return Genome(())
    genome = Genome.from_nodes(nodes[: output - len(INPUTS) + 1])
    if not depends_on_x(genome):
        raise ValueError(f"A genome's output must depend on `x`. Received: {text!r}")
    return genome


def save_genome(genome: Genome, path: str | os.PathLike, **extra) -> None:
    """Writes `genome` as JSON (its text form, its nodes, and any `extra` fields such as scores)."""
    with open(path, "w") as f:
        json.dump({**genome.to_json(), **extra}, f, indent=2)


def load_genome(path: str | os.PathLike) -> Genome:
    """Reads a genome written by `save_genome` (or by a search run: `best_*.json` in its `--out`)."""
    with open(path) as f:
        data = json.load(f)
    return parse(data["genome"])


# --- random genomes and mutations -------------------------------------------------------------


def _primitives(sample_only: bool) -> tuple[str, ...]:
    return SAMPLE_PRIMITIVES if sample_only else PRIMITIVES


def _random_node(rng: random.Random, index: int, primitives: Sequence[str]) -> Node:
    primitive = rng.choice(primitives)
    return Node(primitive, tuple(rng.randrange(index) for _ in range(ARITY[primitive])))


def depends_on_x(genome: Genome) -> bool:
    """Whether the output is connected to `x` in the graph (necessary, not sufficient)."""
    if not genome.nodes:
        return True
    reaches = [True, False, False, False]
    for node in genome.nodes:
        reaches.append(any(reaches[i] for i in node.inputs))
    return reaches[-1]


def random_genome(
    rng: random.Random, max_nodes: int = DEFAULT_MAX_NODES, sample_only: bool = False, tries: int = 1000
) -> Genome:
    """A random genome connected to `x`: up to `max_nodes` random nodes, the last one the output."""
    primitives = _primitives(sample_only)
    for _ in range(tries):
        size = rng.randint(1, max_nodes)
        nodes = [_random_node(rng, len(INPUTS) + i, primitives) for i in range(size)]
        genome = Genome.from_nodes(nodes)
        if genome.nodes and depends_on_x(genome):
            return genome
    raise RuntimeError(f"No random genome depending on x in {tries} tries")


def mutate(
    genome: Genome,
    rng: random.Random,
    max_nodes: int = DEFAULT_MAX_NODES,
    sample_only: bool = False,
    tries: int = 1000,
) -> Genome:
    """One mutation: re-draw one node's primitive and inputs, insert a node, or remove one.

    The child is canonical, connected to `x`, has 1 to `max_nodes` nodes and differs from the
    parent (a draw that fails any of these is redrawn).
    """
    primitives = _primitives(sample_only)
    for _ in range(tries):
        nodes = list(genome.nodes)
        kind = rng.choice(("redraw", "insert", "remove"))
        if kind == "redraw" and nodes:
            position = rng.randrange(len(nodes))
            nodes[position] = _random_node(rng, len(INPUTS) + position, primitives)
        elif kind == "insert" and len(nodes) < max_nodes:
            position = rng.randrange(len(nodes) + 1)
            index = len(INPUTS) + position
            new = _random_node(rng, index, primitives)
            nodes = [_shift(node, index, +1) for node in nodes]
            nodes.insert(position, new)
            # Rewire one input of a later node (or make the new node the output) so it is used.
            consumers = range(position + 1, len(nodes))
            if consumers:
                target = rng.choice(list(consumers))
                slot = rng.randrange(len(nodes[target].inputs))
                inputs = list(nodes[target].inputs)
                inputs[slot] = index
                nodes[target] = Node(nodes[target].primitive, tuple(inputs))
        elif kind == "remove" and len(nodes) > 1:
            position = rng.randrange(len(nodes))
            index = len(INPUTS) + position
            replacement = rng.choice(nodes[position].inputs)
            if position == len(nodes) - 1:  # removing the output: one of its inputs takes its place
                if replacement < len(INPUTS):
                    continue
                nodes = nodes[: replacement - len(INPUTS) + 1]
                position = len(nodes)  # nothing below to delete
            nodes = [_replace(node, index, replacement) for node in nodes]
            if position < len(nodes):
                del nodes[position]
                nodes = [_shift(node, index + 1, -1) for node in nodes]
        else:
            continue
        child = Genome.from_nodes(nodes)
        if child != genome and child.nodes and len(child.nodes) <= max_nodes and depends_on_x(child):
            return child
    raise RuntimeError(f"No valid mutation of {genome} in {tries} tries")


def _shift(node: Node, start: int, by: int) -> Node:
    return Node(node.primitive, tuple(i + by if i >= start else i for i in node.inputs))


def _replace(node: Node, old: int, new: int) -> Node:
    return Node(node.primitive, tuple(new if i == old else i for i in node.inputs))
