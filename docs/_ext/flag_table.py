"""Sphinx directive ``flag-table``: the command-line flags of a registered
criterion (or task), read from its dataclass config, so that the documented
flags cannot drift from the code.

In a MyST page::

    ```{flag-table} ot_seq
    ```

    ```{flag-table} mediator_translation
    :registry: task
    :plugin-only:
    ```

The directive imports ``fairseq_ot`` (which registers the plugin) and reads
``fairseq.criterions.CRITERION_DATACLASS_REGISTRY[name]`` (``:registry:
task``: ``fairseq.tasks.TASK_DATACLASS_REGISTRY``). Every field becomes a
row (flag, default, values, help) except fairseq's bookkeeping field
``_name`` and the fields whose default interpolates a global flag
(``${common.seed}``, ``${optimization.sentence_avg}``): those are fairseq's
own flags, not the criterion's. Fields declared by fairseq's classes (such as
``--label-smoothing`` of ``label_smoothed_cross_entropy``) come last, marked
as inherited; ``:plugin-only:`` leaves them out (a task's table then lists
only the plugin's flags, not the dozens of fairseq's translation task).
"""

import dataclasses
import enum
import inspect
import re
from typing import List, NamedTuple, Optional

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

PLUGIN_PACKAGE = "fairseq_ot"
REGISTRIES = ("criterion", "task")


class Flag(NamedTuple):
    flag: str  # "--ot-weight"
    default: str
    values: str  # choices, "on/off" or the type
    help: str
    inherited_from: Optional[str]  # the fairseq module that declares it, None for the plugin's


def dataclass_registry(registry: str):
    """The name -> dataclass registry of fairseq for `registry`, with the plugin registered."""
    import fairseq_ot  # noqa: F401  (registers the criterions and tasks)

    if registry == "criterion":
        from fairseq.criterions import CRITERION_DATACLASS_REGISTRY

        return CRITERION_DATACLASS_REGISTRY
    if registry == "task":
        from fairseq.tasks import TASK_DATACLASS_REGISTRY

        return TASK_DATACLASS_REGISTRY
    raise ValueError(f"unknown registry {registry!r}; choose one of {REGISTRIES}")


def is_interpolated(field: dataclasses.Field) -> bool:
    """A field whose default is a `${...}` interpolation mirrors a global flag."""
    return isinstance(field.default, str) and field.default.startswith("${")


def documented_fields(config) -> List[dataclasses.Field]:
    """The fields of a criterion's or task's dataclass that are its own flags."""
    return [f for f in dataclasses.fields(config) if not f.name.startswith("_") and not is_interpolated(f)]


def declaring_class(config, name: str):
    """The class of `config`'s MRO that declares the field `name` first."""
    for cls in reversed(config.__mro__):
        if name in cls.__dict__.get("__annotations__", {}):
            return cls
    return config


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def format_default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "None"
    if value == "":
        return "(empty)"
    return str(value)


def format_values(field: dataclasses.Field) -> str:
    kind = field.type
    if inspect.isclass(kind) and issubclass(kind, enum.Enum):
        return " | ".join(str(member.value) for member in kind)
    if "range" in field.metadata:
        return str(field.metadata["range"])
    if kind is bool:
        return "on/off (no value)"
    return getattr(kind, "__name__", str(kind).replace("typing.", ""))


def criterion_flags(name: str, registry: str = "criterion", plugin_only: bool = False) -> List[Flag]:
    """The rows of the flag table of `name`: the plugin's fields in
    declaration order, then the ones that fairseq's classes declare."""
    table = dataclass_registry(registry)
    if name not in table:
        known = sorted(key for key, config in table.items()
                       if config.__module__.startswith(PLUGIN_PACKAGE))
        raise KeyError(f"no {registry} {name!r} is registered; the plugin's: {', '.join(known)}")
    config = table[name]
    own, inherited = [], []
    for field in documented_fields(config):
        owner = declaring_class(config, field.name)
        from_fairseq = not owner.__module__.startswith(PLUGIN_PACKAGE)
        row = Flag(flag_name(field.name), format_default(field), format_values(field),
                   " ".join(str(field.metadata.get("help", "")).split()),
                   owner.__module__ if from_fairseq else None)
        (inherited if from_fairseq else own).append(row)
    return own if plugin_only else own + inherited


def source_files(name: str, registry: str) -> List[str]:
    """The plugin's source files that declare `name`'s fields (build dependencies)."""
    config = dataclass_registry(registry)[name]
    files = []
    for cls in config.__mro__:
        if cls.__module__.startswith(PLUGIN_PACKAGE):
            try:
                files.append(inspect.getsourcefile(cls))
            except TypeError:
                pass
    return sorted({f for f in files if f})


FLAG_MENTION = re.compile(r"(--[a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


def text_with_flags(text: str) -> List[nodes.Node]:
    """`text` as nodes, with each --flag mentioned in it set as code."""
    parts = []
    for index, piece in enumerate(FLAG_MENTION.split(text)):
        if not piece:
            continue
        parts.append(nodes.literal(piece, piece) if index % 2 else nodes.Text(piece))
    return parts


class FlagTableDirective(SphinxDirective):
    required_arguments = 1
    optional_arguments = 0
    has_content = False
    option_spec = {
        "registry": lambda argument: directives.choice(argument, REGISTRIES),
        "plugin-only": directives.flag,
    }

    def run(self):
        name = self.arguments[0]
        registry = self.options.get("registry", "criterion")
        try:
            rows = criterion_flags(name, registry, "plugin-only" in self.options)
        except KeyError as error:
            raise self.error(f"flag-table: {error.args[0]}")
        for path in source_files(name, registry):
            self.env.note_dependency(path)

        headers = ("flag", "default", "values", "help")
        table = nodes.table(classes=["flag-table"])
        group = nodes.tgroup(cols=len(headers))
        table += group
        for width in (22, 12, 16, 50):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += self.row([[nodes.Text(header)] for header in headers])
        body = nodes.tbody()
        group += body
        for row in rows:
            help_nodes = text_with_flags(row.help)
            if row.inherited_from:
                help_nodes += [nodes.Text(" (inherited from "), nodes.literal(row.inherited_from, row.inherited_from),
                               nodes.Text(")")]  # e.g. fairseq.criterions.label_smoothed_cross_entropy
            body += self.row([
                [nodes.literal(row.flag, row.flag)],
                [nodes.literal(row.default, row.default)],
                [nodes.Text(row.values)],
                help_nodes,
            ])
        # the anchor on a container: furo's table wrapper copies a table's own id
        anchor = nodes.container(ids=[f"flags-{registry}-{name}".replace("_", "-")])
        anchor += table
        return [anchor]

    @staticmethod
    def row(cells):
        row = nodes.row()
        for content in cells:
            entry = nodes.entry()
            paragraph = nodes.paragraph()
            paragraph += content
            entry += paragraph
            row += entry
        return row


def setup(app):
    app.add_directive("flag-table", FlagTableDirective)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
