"""CloudFormation intrinsic functions, evaluated against the locally provisioned resources.

Supported: Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::If (+ Conditions with
Fn::Equals/And/Or/Not/Condition), Fn::FindInMap, Fn::GetAZs, Fn::Base64, Fn::Length,
Fn::ToJsonString, pseudo parameters, parameter defaults, AWS::NoValue and ``{{resolve:...}}``
dynamic references (through a callback). Fn::ImportValue (cross-stack exports) and anything else
raise :class:`IntrinsicError`: a local stack has no other stacks to import from.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compliance_tools.local.template import CloudTemplate

PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:([a-z-]+):(.*?)\}\}")


class IntrinsicError(Exception):
    """An intrinsic function cannot be evaluated locally."""


class UnresolvedReferenceError(IntrinsicError):
    """A reference to a resource that has not been provisioned (yet)."""

    def __init__(self, logical_id: str, detail: str = "") -> None:
        super().__init__(f"resource {logical_id!r} is not provisioned{': ' + detail if detail else ''}")
        self.logical_id = logical_id


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()


@dataclass
class PhysicalResource:
    """What a provisioned (or stand-in) resource answers to ``Ref`` and ``Fn::GetAtt``."""

    logical_id: str
    type: str
    ref: str
    attributes: dict[str, Any] = field(default_factory=dict)
    # False for resource types the runtime does not emulate: Ref/GetAtt give plausible stand-ins.
    emulated: bool = True

    def get_att(self, name: str) -> Any:
        if name in self.attributes:
            return self.attributes[name]
        if not self.emulated:
            return f"{self.ref}.{name}"
        raise IntrinsicError(f"{self.logical_id} ({self.type}) has no attribute {name!r} locally")


DynamicResolver = Callable[[str, str], str]


class Resolver:
    """Evaluates template values. ``physical`` fills up as the provisioner creates resources."""

    def __init__(
        self,
        template: CloudTemplate,
        *,
        region: str,
        account_id: str,
        parameters: Mapping[str, str] | None = None,
        dynamic: DynamicResolver | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.parameter_values = dict(parameters or {})
        self.physical: dict[str, PhysicalResource] = {}
        self.dynamic = dynamic
        self._conditions: dict[str, bool] = {}

    # -- public API -------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic inside ``value``; AWS::NoValue entries are dropped."""
        resolved = self._resolve(value)
        return None if resolved is NO_VALUE else resolved

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.template.conditions:
                raise IntrinsicError(f"unknown condition {name!r}")
            result = self._resolve(self.template.conditions[name])
            if not isinstance(result, bool):
                raise IntrinsicError(f"condition {name!r} did not evaluate to a boolean: {result!r}")
            self._conditions[name] = result
        return self._conditions[name]

    def is_enabled(self, logical_id: str) -> bool:
        """False when the resource's ``Condition`` is false (CloudFormation then skips it)."""
        name = self.template.resource(logical_id).get("Condition")
        return True if name is None else self.condition(str(name))

    def pseudo(self, name: str) -> Any:
        stack = self.template.stack_name
        values: dict[str, Any] = {
            "AWS::AccountId": self.account_id,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
            "AWS::Partition": "aws",
            "AWS::Region": self.region,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{stack}/"
                "00000000-0000-4000-8000-000000000000"
            ),
            "AWS::StackName": stack,
            "AWS::URLSuffix": "amazonaws.com",
        }
        return values[name]

    def ref(self, name: str) -> Any:
        if name in PSEUDO_PARAMETERS:
            return self.pseudo(name)
        if name in self.template.parameters:
            return self._parameter(name)
        if name in self.physical:
            return self.physical[name].ref
        if name in self.template.resources:
            raise UnresolvedReferenceError(name)
        raise IntrinsicError(f"Ref to unknown name {name!r}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.physical:
            if logical_id in self.template.resources:
                raise UnresolvedReferenceError(logical_id, f"Fn::GetAtt {attribute}")
            raise IntrinsicError(f"Fn::GetAtt on unknown resource {logical_id!r}")
        return self.physical[logical_id].get_att(attribute)

    # -- evaluation -------------------------------------------------------------------------------

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref":
                    return self.ref(str(argument))
                if key == "Condition":
                    return self.condition(str(argument))
                if key.startswith("Fn::"):
                    return self._function(key, argument)
            result = {}
            for key, item in value.items():
                resolved = self._resolve(item)
                if resolved is not NO_VALUE:
                    result[key] = resolved
            return result
        if isinstance(value, list):
            return [item for item in (self._resolve(item) for item in value) if item is not NO_VALUE]
        if isinstance(value, str) and "{{resolve:" in value:
            return self._dynamic_references(value)
        return value

    def _function(self, name: str, argument: Any) -> Any:
        handlers: dict[str, Callable[[Any], Any]] = {
            "Fn::GetAtt": self._fn_get_att,
            "Fn::Join": self._fn_join,
            "Fn::Sub": self._fn_sub,
            "Fn::Select": self._fn_select,
            "Fn::Split": self._fn_split,
            "Fn::If": self._fn_if,
            "Fn::Equals": self._fn_equals,
            "Fn::And": lambda arg: all(self._boolean(item) for item in arg),
            "Fn::Or": lambda arg: any(self._boolean(item) for item in arg),
            "Fn::Not": lambda arg: not self._boolean(arg[0]),
            "Fn::FindInMap": self._fn_find_in_map,
            "Fn::GetAZs": lambda arg: [f"{self._resolve(arg) or self.region}{zone}" for zone in "abc"],
            "Fn::Base64": lambda arg: base64.b64encode(str(self._resolve(arg)).encode()).decode(),
            "Fn::Length": lambda arg: len(self._resolve(arg)),
            "Fn::ToJsonString": lambda arg: json.dumps(self._resolve(arg), separators=(",", ":")),
            "Fn::ImportValue": self._fn_import_value,
        }
        handler = handlers.get(name)
        if handler is None:
            raise IntrinsicError(f"{name} is not supported by the local runtime")
        result = handler(argument)
        if isinstance(result, str) and "{{resolve:" in result:
            # Fn::Join / Fn::Sub often assemble the reference around a Ref (CDK does).
            return self._dynamic_references(result)
        return result

    def _parameter(self, name: str) -> Any:
        if name in self.parameter_values:
            return self.parameter_values[name]
        definition = self.template.parameters[name]
        if "Default" not in definition:
            raise IntrinsicError(f"parameter {name!r} has no Default and no local value")
        default = definition["Default"]
        if str(definition.get("Type", "")).startswith("List<") or definition.get("Type") == (
            "CommaDelimitedList"
        ):
            return [item.strip() for item in str(default).split(",")]
        return default

    def _fn_get_att(self, argument: Any) -> Any:
        if isinstance(argument, str):
            logical_id, _, attribute = argument.partition(".")
        else:
            logical_id, attribute = argument[0], self._resolve(argument[1])
        return self.get_att(str(logical_id), str(attribute))

    def _fn_join(self, argument: Any) -> str:
        delimiter, items = argument
        values = self._resolve(items)
        if not isinstance(values, list):
            raise IntrinsicError(f"Fn::Join needs a list, got {values!r}")
        return str(delimiter).join(_scalar(item) for item in values)

    def _fn_sub(self, argument: Any) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        else:
            text, raw_variables = argument
            variables = {key: self._resolve(item) for key, item in raw_variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _scalar(variables[name])
            if "." in name and name.split(".", 1)[0] in self.template.resources:
                logical_id, attribute = name.split(".", 1)
                return _scalar(self.get_att(logical_id, attribute))
            return _scalar(self.ref(name))

        return _SUB_VARIABLE.sub(substitute, str(text))

    def _fn_select(self, argument: Any) -> Any:
        index, items = argument
        values = self._resolve(items)
        position = int(self._resolve(index))
        if not isinstance(values, list) or not 0 <= position < len(values):
            raise IntrinsicError(f"Fn::Select index {position} out of range of {values!r}")
        return values[position]

    def _fn_split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return str(self._resolve(text)).split(str(delimiter))

    def _fn_if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self._resolve(when_true if self.condition(str(name)) else when_false)

    def _fn_equals(self, argument: Any) -> bool:
        left, right = (self._resolve(item) for item in argument)
        return bool(_scalar(left) == _scalar(right))

    def _fn_find_in_map(self, argument: Any) -> Any:
        map_name, top_key, second_key = (self._resolve(item) for item in argument[:3])
        try:
            return self.template.mappings[map_name][top_key][second_key]
        except KeyError:
            raise IntrinsicError(f"Fn::FindInMap: no {map_name}/{top_key}/{second_key}") from None

    def _fn_import_value(self, argument: Any) -> Any:
        raise IntrinsicError(
            f"Fn::ImportValue {self._resolve(argument)!r}: cross-stack exports are not available locally "
            "(the local runtime boots one stack)"
        )

    def _boolean(self, value: Any) -> bool:
        result = self._resolve(value)
        if isinstance(result, bool):
            return result
        if isinstance(result, str) and result.lower() in {"true", "false"}:
            return result.lower() == "true"
        raise IntrinsicError(f"expected a condition, got {result!r}")

    def _dynamic_references(self, text: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            if self.dynamic is None:
                raise IntrinsicError(f"dynamic reference {match.group(0)!r} cannot be resolved here")
            return self.dynamic(match.group(1), match.group(2))

        return _DYNAMIC_REFERENCE.sub(substitute, text)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise IntrinsicError(f"expected a string, got {value!r}")


def references(value: Any) -> set[str]:
    """Names a template value refers to (resources, parameters, pseudo parameters): for ordering."""
    found: set[str] = set()
    _collect(value, found)
    return found


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
                return
            if key == "Fn::GetAtt":
                if isinstance(argument, str):
                    found.add(argument.split(".", 1)[0])
                elif isinstance(argument, list) and argument:
                    found.add(str(argument[0]))
                return
            if key == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                local = set() if isinstance(argument, str) else set(argument[1])
                for name in _SUB_VARIABLE.findall(str(text)):
                    if not name.startswith("!") and name not in local:
                        found.add(name.split(".", 1)[0])
                if not isinstance(argument, str):
                    _collect(argument[1], found)
                return
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


def dependency_order(template: CloudTemplate, logical_ids: Iterable[str] | None = None) -> list[str]:
    """Resources sorted so every resource comes after what it references or DependsOn."""
    resources = template.resources
    wanted = list(logical_ids) if logical_ids is not None else list(resources)
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(logical_id: str, path: tuple[str, ...]) -> None:
        if state.get(logical_id) == 2:
            return
        if state.get(logical_id) == 1:
            raise IntrinsicError(f"circular dependency: {' -> '.join((*path, logical_id))}")
        state[logical_id] = 1
        resource = resources[logical_id]
        depends_on = resource.get("DependsOn", [])
        names = set(references(resource.get("Properties", {})))
        names.update([depends_on] if isinstance(depends_on, str) else depends_on)
        for name in sorted(names):
            if name in resources and name != logical_id:
                visit(name, (*path, logical_id))
        state[logical_id] = 2
        order.append(logical_id)

    for logical_id in wanted:
        visit(logical_id, ())
    return order
