"""The typed streaming events of a response, numbered by ``sequence_number``, in the order the official
SDK's ``client.responses.stream()`` accumulates them:

``response.created`` → ``response.in_progress`` → per output item ``response.output_item.added`` →
(a file search: ``response.file_search_call.in_progress`` / ``.searching`` / ``.completed``; a message:
``response.content_part.added`` → ``response.output_text.delta``… →
``response.output_text.annotation.added``… → ``response.output_text.done`` →
``response.content_part.done``) → ``response.output_item.done`` → ``response.completed`` (or
``response.incomplete`` / ``response.failed``).
"""

from __future__ import annotations

import copy


class EventBuilder:
    def __init__(self, response: dict):
        self.response = response  # the live snapshot; its output grows as items finish
        self.sequence = 0

    def _event(self, kind: str, **fields) -> dict:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _snapshot(self) -> dict:
        return copy.deepcopy(self.response)

    def lifecycle(self, kind: str) -> dict:
        """``response.created`` / ``in_progress`` / ``completed`` / ``incomplete`` / ``failed``."""
        return self._event(f"response.{kind}", response=self._snapshot())

    def file_search(self, item: dict) -> list[dict]:
        index = len(self.response["output"])
        running = {**item, "status": "in_progress", "results": None}
        events = [self._event("response.output_item.added", output_index=index, item=running)]
        for stage in ("in_progress", "searching", "completed"):
            events.append(self._event(f"response.file_search_call.{stage}", output_index=index, item_id=item["id"]))
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        self.response["output"].append(item)
        return events

    # a message is opened, streamed, then closed with its final text, annotations and logprobs
    def message_start(self, item_id: str) -> list[dict]:
        self._msg_index = len(self.response["output"])
        self._msg_id = item_id
        item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [self._event("response.output_item.added", output_index=self._msg_index, item=item),
                self._event("response.content_part.added", output_index=self._msg_index, item_id=item_id,
                            content_index=0, part=part)]

    def text_delta(self, delta: str, logprobs: list | None = None) -> dict:
        return self._event("response.output_text.delta", output_index=self._msg_index, item_id=self._msg_id,
                           content_index=0, delta=delta, logprobs=_delta_logprobs(logprobs))

    def message_done(self, item: dict) -> list[dict]:
        part = item["content"][0]
        events = [self._event("response.output_text.annotation.added", output_index=self._msg_index,
                              item_id=self._msg_id, content_index=0, annotation_index=i, annotation=a)
                  for i, a in enumerate(part["annotations"])]
        events += [
            self._event("response.output_text.done", output_index=self._msg_index, item_id=self._msg_id,
                        content_index=0, text=part["text"], logprobs=_delta_logprobs(part.get("logprobs"))),
            self._event("response.content_part.done", output_index=self._msg_index, item_id=self._msg_id,
                        content_index=0, part=part),
            self._event("response.output_item.done", output_index=self._msg_index, item=item),
        ]
        self.response["output"].append(item)
        return events


    # a function call: its arguments stream in pieces, then the finished item
    def function_call_start(self, item: dict) -> dict:
        self._call_index = len(self.response["output"])
        self._call = {**item, "arguments": "", "status": "in_progress"}
        return self._event("response.output_item.added", output_index=self._call_index, item=self._call)

    def function_call_arguments(self, delta: str) -> dict:
        return self._event("response.function_call_arguments.delta", output_index=self._call_index,
                           item_id=self._call["id"], delta=delta)

    def function_call_done(self, item: dict) -> list[dict]:
        events = [self._event("response.function_call_arguments.done", output_index=self._call_index,
                              item_id=item["id"], name=item["name"], arguments=item["arguments"]),
                  self._event("response.output_item.done", output_index=self._call_index, item=item)]
        self.response["output"].append(item)
        return events


def _delta_logprobs(entries: list | None) -> list:
    """Delta and done events carry logprobs without the ``bytes`` the final output text has."""
    return [{"token": e["token"], "logprob": e["logprob"],
             "top_logprobs": [{"token": t["token"], "logprob": t["logprob"]} for t in e.get("top_logprobs") or []]}
            for e in entries or []]
