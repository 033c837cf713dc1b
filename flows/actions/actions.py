"""Actions served to the dialogue engine over the Rasa webhook protocol."""

from __future__ import annotations

from datetime import date
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from flows.actions.deadlines import deadlines_text


class ActionDeclarationDeadline(Action):
    """The caller's next turnover declaration deadlines, computed from today's date."""

    def name(self) -> str:
        return "action_declaration_deadline"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        for text in deadlines_text(date.today()):
            dispatcher.utter_message(text=text)
        return []
