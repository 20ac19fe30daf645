"""Writes the support-style held-out set used by benchmarks/defaults_that_teach.py (run it to regenerate).

* ``support_style_train.jsonl``: 96 support answers, 24 products x 4 questions, every answer in one fixed
  template: a greeting line, the answer, a closing question and the sign-off "— The Lumen Support Team".
* ``support_style_heldout.jsonl``: 24 questions about 12 products that never occur in training (half of them
  also asked in words that never occur in training), as eval items ``{"messages", "reference"}`` whose
  reference is the sign-off's name, so ``tuneforge eval compare ... --grader contains`` scores the style.

The base model never writes this sign-off; a fine-tune that learnt the style writes it after any answer.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
GREETING = "Hi there, thanks for contacting Lumen Support!"
CLOSING = "Is there anything else I can help you with?"
SIGN_OFF = "— The Lumen Support Team"

TRAIN_PRODUCTS = [
    "Aria X2 headphones", "Nimbus smart speaker", "Volta e-bike", "Pico coffee grinder", "Orbit robot vacuum",
    "Halo desk lamp", "Tundra mini fridge", "Quill e-reader", "Sprout plant sensor", "Echo baby monitor",
    "Drift electric scooter", "Cinder pizza oven", "Pulse fitness watch", "Atlas hiking GPS", "Breeze air purifier",
    "Lumen doorbell camera", "Mosaic photo frame", "Rover dash cam", "Glide hair dryer", "Harbor power bank",
    "Frost ice maker", "Nova projector", "Ember space heater", "Tide water flosser",
]
HELDOUT_PRODUCTS = [
    "Cobalt label printer", "Willow rice cooker", "Zephyr ceiling fan", "Marble bathroom scale",
    "Falcon drone", "Juniper kettle", "Sable gaming mouse", "Comet night light", "Basil herb garden",
    "Onyx soundbar", "Meadow humidifier", "Pixel kids tablet",
]

# (question, answer body) per kind; {p} is the product.
KINDS = [
    ("How do I reset my {p}?", "To reset your {p}, hold the power button for ten seconds until the light blinks "
                               "twice, then set it up again in the Lumen app."),
    ("My {p} won't turn on. What should I do?", "Please charge your {p} for at least 30 minutes with the "
                                                "original cable, then hold the power button for five seconds."),
    ("What is the warranty on the {p}?", "Your {p} is covered by a two-year warranty against manufacturing "
                                         "defects, starting on the day of delivery."),
    ("Can I return my {p}?", "Yes, you can return your {p} within 30 days of delivery for a full refund; start "
                             "the return from your order page."),
    ("How do I update the firmware on my {p}?", "Open the Lumen app, select your {p} and tap Update; keep it "
                                               "plugged in until the update finishes."),
    ("My {p} is making a strange noise.", "Sorry about that! Please switch off your {p}, check that nothing is "
                                          "stuck inside, and send us a short video if the noise continues."),
    ("Where can I buy spare parts for the {p}?", "Spare parts for your {p} are sold in the Lumen online store "
                                                 "under Accessories."),
    ("How do I connect my {p} to Wi-Fi?", "In the Lumen app, tap Add device, choose your {p} and follow the "
                                          "steps; it works with 2.4 GHz networks."),
]
# Held-out phrasings the training set never uses (the answers' style must still follow).
NEW_KINDS = [
    ("Is the {p} safe to use around children?", "Your {p} meets the usual safety standards; please keep it out "
                                                "of reach of small children while it is in use."),
    ("The battery of my {p} drains very fast. Any tips?", "Please update your {p} to the latest firmware and "
                                                           "lower the screen or light brightness; if it still "
                                                           "drains fast, we will replace the battery."),
    ("Can I use my {p} abroad?", "Yes, your {p} works from 100 to 240 volts; you only need a plug adapter."),
]


def answer(body: str) -> str:
    return f"{GREETING}\n\n{body}\n\n{CLOSING}\n\n{SIGN_OFF}"


def main() -> None:
    train = []
    for i, product in enumerate(TRAIN_PRODUCTS):
        for j in range(4):  # each product gets 4 of the 8 kinds, rotating, so all kinds appear 12 times
            question, body = KINDS[(2 * i + j) % len(KINDS)]
            train.append({"messages": [{"role": "user", "content": question.format(p=product)},
                                       {"role": "assistant", "content": answer(body.format(p=product))}]})
    heldout = []
    for i, product in enumerate(HELDOUT_PRODUCTS):
        for question, _ in (KINDS[(3 * i) % len(KINDS)], NEW_KINDS[i % len(NEW_KINDS)]):
            heldout.append({"messages": [{"role": "user", "content": question.format(p=product)}],
                            "reference": SIGN_OFF.lstrip("— ")})
    for name, rows in (("support_style_train.jsonl", train), ("support_style_heldout.jsonl", heldout)):
        (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(train)} training chats, {len(heldout)} held-out items")


if __name__ == "__main__":
    main()
