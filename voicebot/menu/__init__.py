"""The unlock menu tree as data: ``load_menu(path) -> Menu``."""

from .model import (
    ActionNode,
    DigitsNode,
    EndNode,
    Menu,
    MenuNode,
    MessageNode,
    Node,
    Option,
    Route,
    TransferNode,
    UniversalCommand,
)
from .loader import load_menu

__all__ = [
    "ActionNode",
    "DigitsNode",
    "EndNode",
    "Menu",
    "MenuNode",
    "MessageNode",
    "Node",
    "Option",
    "Route",
    "TransferNode",
    "UniversalCommand",
    "load_menu",
]
