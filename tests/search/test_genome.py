"""Genomes: text form round trips, canonical form, mutation validity over thousands of draws."""

import random

import pytest

from keras_norms.ops.evolved import INPUTS
from keras_norms.search import SEEDS, Genome, load_genome, mutate, parse, random_genome, save_genome
from keras_norms.search.genome import ARITY, BATCH_AGGREGATES, PRIMITIVES, depends_on_x, save_genome  # noqa: F811

DRAWS = 3000


def assert_valid(genome, max_nodes, sample_only=False):
    assert 1 <= len(genome.nodes) <= max_nodes
    for position, node in enumerate(genome.nodes):
        assert node.primitive in PRIMITIVES
        assert len(node.inputs) == ARITY[node.primitive]
        assert all(0 <= i < len(INPUTS) + position for i in node.inputs), "inputs must be earlier nodes"
        if sample_only:
            assert node.primitive not in BATCH_AGGREGATES
    used = {i for node in genome.nodes for i in node.inputs}
    assert all(len(INPUTS) + p in used for p in range(len(genome.nodes) - 1)), "every node feeds the output"
    assert depends_on_x(genome)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_text_round_trips(name):
    text = str(SEEDS[name])
    assert str(parse(text)) == text and parse(text) == SEEDS[name]


def test_issue_example_parses_to_the_b0_seed():
    text = "div(x, max(sqrt(variance_batch(x)), add(mul(v1, x), sqrt(variance_instance(x)))))"
    assert parse(text) == SEEDS["evonorm_b0"] and str(parse(text)) == text


def test_shared_subexpressions_are_one_node():
    genome = parse("add(sqrt(variance_batch(x)), mul(x, sqrt(variance_batch(x))))")
    assert [n.primitive for n in genome.nodes] == ["variance_batch", "sqrt", "mul", "add"]
    assert parse(" add( sqrt(variance_batch(x)) ,mul(x,sqrt(variance_batch(x))))") == genome


def test_unused_and_repeated_nodes_are_canonicalized():
    nodes = [("sqrt", (0,)), ("exp", (0,)), ("sqrt", (0,)), ("add", (4, 6))]
    genome = Genome.from_nodes(nodes)
    assert str(genome) == "add(sqrt(x), sqrt(x))" and len(genome.nodes) == 2


@pytest.mark.parametrize("sample_only", [False, True], ids=["all", "sample_only"])
def test_random_genomes_and_mutations_are_valid_and_round_trip(sample_only):
    rng = random.Random(1)
    max_nodes = 10
    kinds = set()
    genome = random_genome(rng, max_nodes, sample_only)
    for draw in range(DRAWS):
        if draw % 50 == 0:
            genome = random_genome(rng, max_nodes, sample_only)
            assert_valid(genome, max_nodes, sample_only)
        child = mutate(genome, rng, max_nodes, sample_only)
        assert child != genome
        assert_valid(child, max_nodes, sample_only)
        assert parse(str(child)) == child and str(parse(str(child))) == str(child)
        kinds.add((len(child.nodes) > len(genome.nodes)) - (len(child.nodes) < len(genome.nodes)))
        genome = child
    assert kinds == {-1, 0, 1}, "mutations grow, shrink and keep the size"


def test_every_primitive_is_drawn():
    rng = random.Random(2)
    seen = set()
    for _ in range(300):
        seen |= random_genome(rng).primitives
    assert seen == set(PRIMITIVES)


def test_mutation_is_deterministic_for_a_seed():
    def run(seed):
        rng = random.Random(seed)
        genome = SEEDS["evonorm_b0"]
        texts = []
        for _ in range(50):
            genome = mutate(genome, rng)
            texts.append(str(genome))
        return texts

    assert run(3) == run(3) and run(3) != run(4)


@pytest.mark.parametrize(
    "text, match",
    [
        ("div(x, frobnicate(x))", r"unknown name 'frobnicate' at 7"),
        ("add(x)", r"`add` at 0 takes 2 input\(s\), got 1"),
        ("sqrt(x, x)", "takes 1 input"),
        ("sqrt(x", r"expected '\)'"),
        ("sqrt(x))", r"unexpected '\)'"),
        ("sqrt(x) + 1", "unexpected"),
        ("", "unexpected end"),
        ("v1", "depend on `x`"),
    ],
)
def test_parse_errors_say_where(text, match):
    with pytest.raises(ValueError, match=match):
        parse(text)


def test_bad_nodes_are_rejected():
    with pytest.raises(ValueError, match="earlier nodes"):
        Genome.from_nodes([("sqrt", (4,))])
    with pytest.raises(ValueError, match="Unknown primitive"):
        Genome.from_nodes([("relu", (0,))])


def test_save_and_load(tmp_path):
    path = tmp_path / "genome.json"
    save_genome(SEEDS["evonorm_s0"], path, scores=[0.9, 0.8, 0.7])
    assert load_genome(path) == SEEDS["evonorm_s0"]
