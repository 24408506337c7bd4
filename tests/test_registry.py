"""The one technique registry (deepcanvas/registry.py): the CLI, the studio, the demo and ``import deepcanvas``
all list the techniques it holds, and each record matches the functions it names."""

import argparse
import importlib
import inspect

import deepcanvas
from deepcanvas import cli, demo, registry
from deepcanvas.registry import TECHNIQUES
from deepcanvas.web import forms

COMMANDS = [t.command for t in TECHNIQUES]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The parser's subcommands: name -> help, in the order ``deepcanvas --help`` lists them."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.help for a in action._choices_actions}


def test_the_cli_lists_the_registry_techniques_in_order_with_their_help():
    subs = _subcommands(cli.build_parser(only=""))
    techniques = {k: v for k, v in subs.items() if k not in ("models", "demo", "serve")}
    assert list(techniques) == COMMANDS
    assert techniques == {t.command: t.help for t in TECHNIQUES}


def test_the_studio_lists_the_registry_techniques_that_have_a_title():
    studio = [t.command for t in TECHNIQUES if t.title]
    assert [s.name for s in forms.SPECS] == studio
    assert [t.name for t in forms.available()] == studio
    for tech in forms.available():
        assert tech.func is getattr(importlib.import_module(tech.spec.import_path), tech.spec.steps)


def test_the_demo_runs_the_registry_techniques_that_have_a_demo_in_their_order():
    ran = [t for t in TECHNIQUES if t.demo]
    assert demo.TECHNIQUES == tuple(t.command for t in sorted(ran, key=lambda t: t.demo.order))
    assert demo.TECHNIQUES == tuple(t.command for t in registry.in_demo())
    assert len({t.demo.order for t in ran}) == len(ran) and len({t.demo.output for t in ran}) == len(ran)


def test_the_package_exports_every_registry_technique_and_nothing_else_from_techniques():
    names = {n for t in TECHNIQUES for n in (t.function, t.steps)}
    exported = {n for n in deepcanvas.__all__
                if getattr(getattr(deepcanvas, n), "__module__", "").startswith("deepcanvas.techniques.")}
    assert names <= set(deepcanvas.__all__)
    # the inversion's sheet, a helper rather than a technique; style_print, style transfer's print entry point
    assert exported - names == {"contact_sheet", "style_print"}
    for t in TECHNIQUES:
        module = importlib.import_module(t.import_path)
        assert getattr(deepcanvas, t.function) is getattr(module, t.function)
        assert getattr(deepcanvas, t.steps) is getattr(module, t.steps)


def test_each_record_names_its_functions_arguments():
    """Positionals are the functions' leading arguments (then ``output`` for a video or zoom); the studio's
    keyword inputs are keyword-only arguments of the ``*_steps`` function."""
    assert len(set(COMMANDS)) == len(COMMANDS)
    for t in TECHNIQUES:
        module = importlib.import_module(t.import_path)
        for func in (getattr(module, t.function), getattr(module, t.steps)):
            params = inspect.signature(func).parameters.values()
            leading = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
            expected = [a.name for a in t.positionals] + ([] if t.kind == "image" else ["output"])
            assert leading == expected, (t.command, func.__name__)
        keyword_only = {p.name for p in inspect.signature(getattr(module, t.steps)).parameters.values()
                        if p.kind is p.KEYWORD_ONLY}
        assert {a.name for a in t.arguments if a.keyword} <= keyword_only, t.command
