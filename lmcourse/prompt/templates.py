"""Prompt templates: text with input placeholders, one answer slot, and optional soft (trainable) tokens.

Taught in chapter 9 (Adapting large PLMs) and chapter 10 (Templates).

    t = Template("{text} All in all, it was {mask}")
    t.render({"text": "A gripping film."}, mask_token="[MASK]")
    # 'A gripping film. All in all, it was [MASK]'

Placeholders:

* ``{name}``     an input field of the example (``example["name"]``);
* ``{mask}``     the answer slot: exactly one per template. Its position matters for a
                 causal LM, which can only fill a slot at the very end;
* ``{soft}``     one trainable vector (a "virtual token"); ``{soft*4}`` is four of them. The
                 template only counts and places them; ``lmcourse.prompt.soft`` owns the vectors.

Literal braces are written ``{{`` and ``}}``.
"""
from __future__ import annotations

import re

from lmcourse.errors import LMCourseError

_SLOT = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z_0-9]*)(?:\*(\d+))?\}")


class TemplateError(LMCourseError, ValueError):
    """A template is malformed (no answer slot, two slots, a missing field, ...)."""


class Template:
    """Text with ``{field}`` placeholders, exactly one answer slot ``{mask}``, optional ``{soft}``/``{soft*n}``.

    ``fields``: the example fields it reads, in order of first use; ``n_soft``: how many soft
    tokens it places; ``mask_at_end``: whether nothing but spaces follows the slot (what a causal
    LM needs). Taught in chapter 9 (Adapting large PLMs) and chapter 10 (Templates).
    """

    def __init__(self, text: str, name: str | None = None):
        if not isinstance(text, str) or not text.strip():
            raise TemplateError("a template must be a non-empty string")
        self.text, self.name = text, name or text
        fields, n_mask, n_soft = [], 0, 0
        pos = 0
        for m in _SLOT.finditer(text):
            if m.group(0) in ("{{", "}}"):
                continue
            key, count = m.group(1), m.group(2)
            if key == "mask":
                if count is not None:
                    raise TemplateError(f"{text!r}: the answer slot is written {{mask}}, not {m.group(0)}")
                n_mask += 1
                pos = m.end()
            elif key == "soft":
                n = 1 if count is None else int(count)
                if n < 1:
                    raise TemplateError(f"{text!r}: {m.group(0)} places no soft token; use {{soft*n}} with n >= 1")
                n_soft += n
            else:
                if count is not None:
                    raise TemplateError(f"{text!r}: only {{soft*n}} takes a count, not {m.group(0)}")
                if key not in fields:
                    fields.append(key)
        leftover = _SLOT.sub("", text)
        if "{" in leftover or "}" in leftover:
            raise TemplateError(f"{text!r} has an unmatched brace; write a literal brace as {{{{ or }}}}")
        if n_mask == 0:
            raise TemplateError(f"the template {text!r} has no answer slot: put {{mask}} where the label word goes")
        if n_mask > 1:
            raise TemplateError(f"the template {text!r} has {n_mask} answer slots; it needs exactly one {{mask}}")
        self.fields: tuple[str, ...] = tuple(fields)
        self.n_soft: int = n_soft
        self.mask_at_end: bool = not text[pos:].strip()

    def render(self, example: dict, mask_token: str, soft_token: str = "") -> str:
        """The prompt for one example: fields filled in, ``{mask}`` -> ``mask_token``, soft tokens -> ``soft_token``."""
        if not isinstance(example, dict):
            raise TemplateError(f"an example must be a dict of fields {self.fields}, not {type(example).__name__}")
        missing = [f for f in self.fields if f not in example]
        if missing:
            raise TemplateError(f"template {self.name!r} needs the field(s) {missing}; "
                                f"the example has {sorted(example)}")

        def fill(m: re.Match) -> str:
            if m.group(0) == "{{":
                return "{"
            if m.group(0) == "}}":
                return "}"
            key, count = m.group(1), m.group(2)
            if key == "mask":
                return mask_token
            if key == "soft":
                return soft_token * (1 if count is None else int(count))
            return str(example[key])

        return _SLOT.sub(fill, self.text)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def key_value_template(task: str, inputs: dict[str, str], answer_key: str = "Answer", sep: str = " | ") -> Template:
    """A structured template: the same key-value layout for every task (notes, "Structured Template").

    ``key_value_template("sentiment", {"Sentence": "text"})`` ->
    ``Template("Task: sentiment | Sentence: {text} | Answer: {mask}")``. ``inputs`` maps a key
    shown to the model to the example field it holds. The answer comes last, so the template
    suits all three model kinds. Taught in chapter 10 (Templates).
    """
    if not inputs:
        raise TemplateError("a key-value template needs at least one input key -> field")
    for key, field in inputs.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", field):
            raise TemplateError(f"{key!r} -> {field!r}: a field name must be an identifier")
    esc = lambda s: s.replace("{", "{{").replace("}", "}}")  # noqa: E731
    parts = ([f"Task: {esc(task)}"] + [f"{esc(k)}: {{{f}}}" for k, f in inputs.items()]
             + [f"{esc(answer_key)}: {{mask}}"])
    return Template(sep.join(parts), name=f"key-value:{task}")


__all__ = ["Template", "TemplateError", "key_value_template"]
