"""``response_format: json_object`` made real: a byte-level JSON prefix automaton for constrained decoding.

The sampler only accepts a token if the output so far plus the token's bytes is still a prefix of a
JSON object (RFC 8259 grammar, top level an object). When the token budget gets as small as the
shortest way to close the open structure, the sampler switches to emitting exactly that closing text,
so the output parses even when ``max_tokens`` cuts it short. Runs of whitespace are capped so a weak
model cannot pad forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WS = frozenset(b" \t\n\r")
DIGITS = frozenset(b"0123456789")
MAX_WS_RUN = 8

# modes
VALUE, OBJ_FIRST, OBJ_KEY, COLON, ARR_FIRST, AFTER, STRING, ESCAPE, UNICODE = range(9)
MINUS, ZERO, INT, FRAC0, FRAC, EXP0, EXPSIGN, EXP, LITERAL, DONE = range(9, 19)
_NUM_END = {ZERO, INT, FRAC, EXP}  # number states where the number may end
_ESCAPES = frozenset(b'"\\/bfnrt')
_HEX = frozenset(b"0123456789abcdefABCDEF")


@dataclass
class JsonState:
    stack: list[int] = field(default_factory=list)  # ord("{") / ord("[") of open containers
    mode: int = VALUE
    is_key: bool = False  # the open string is an object key
    pending: bytes = b""  # rest of a literal (true/false/null) or count of hex digits left (UNICODE)
    hex_left: int = 0
    ws_run: int = 0

    def copy(self) -> JsonState:
        return JsonState(list(self.stack), self.mode, self.is_key, self.pending, self.hex_left, self.ws_run)

    @property
    def done(self) -> bool:
        return self.mode == DONE

    # -- feeding ----------------------------------------------------------------------------------
    def feed(self, data: bytes) -> bool:
        """Advance over ``data``; False (state then undefined) if it cannot continue a JSON object."""
        for b in data:
            if not self._byte(b):
                return False
        return True

    def _byte(self, b: int) -> bool:
        mode = self.mode
        if mode == STRING:
            if b == 0x22:  # closing quote
                self.mode = COLON if self.is_key else self._after_value()
                return True
            if b == 0x5C:
                self.mode = ESCAPE
                return True
            return b >= 0x20
        if mode == ESCAPE:
            if b == ord("u"):
                self.mode, self.hex_left = UNICODE, 4
                return True
            if b in _ESCAPES:
                self.mode = STRING
                return True
            return False
        if mode == UNICODE:
            if b not in _HEX:
                return False
            self.hex_left -= 1
            if self.hex_left == 0:
                self.mode = STRING
            return True
        if mode == LITERAL:
            if not self.pending or b != self.pending[0]:
                return False
            self.pending = self.pending[1:]
            if not self.pending:
                self.mode = self._after_value()
            return True
        if mode >= MINUS and mode <= EXP:
            return self._number(b)
        if b in WS:
            if mode == DONE:
                return False  # the answer ends with the object
            self.ws_run += 1
            return self.ws_run <= MAX_WS_RUN
        self.ws_run = 0
        if mode == DONE:
            return False
        if mode == VALUE or mode == ARR_FIRST:
            if mode == ARR_FIRST and b == ord("]"):
                return self._close(b)
            return self._start_value(b)
        if mode == OBJ_FIRST:
            if b == ord("}"):
                return self._close(b)
            return self._start_key(b)
        if mode == OBJ_KEY:
            return self._start_key(b)
        if mode == COLON:
            if b == ord(":"):
                self.mode = VALUE
                return True
            return False
        if mode == AFTER:
            if b == ord(","):
                self.mode = OBJ_KEY if self.stack[-1] == ord("{") else VALUE
                return True
            return self._close(b)
        return False

    def _start_key(self, b: int) -> bool:
        if b != 0x22:
            return False
        self.mode, self.is_key = STRING, True
        return True

    def _start_value(self, b: int) -> bool:
        if not self.stack and b != ord("{"):
            return False  # json_object: the top level is an object
        if b == ord("{"):
            self.stack.append(b)
            self.mode = OBJ_FIRST
        elif b == ord("["):
            self.stack.append(b)
            self.mode = ARR_FIRST
        elif b == 0x22:
            self.mode, self.is_key = STRING, False
        elif b == ord("-"):
            self.mode = MINUS
        elif b == ord("0"):
            self.mode = ZERO
        elif b in DIGITS:
            self.mode = INT
        elif b in b"tfn":
            self.mode = LITERAL
            self.pending = {ord("t"): b"rue", ord("f"): b"alse", ord("n"): b"ull"}[b]
        else:
            return False
        return True

    def _close(self, b: int) -> bool:
        if not self.stack:
            return False
        want = ord("}") if self.stack[-1] == ord("{") else ord("]")
        if b != want:
            return False
        self.stack.pop()
        self.mode = self._after_value()
        return True

    def _after_value(self) -> int:
        return AFTER if self.stack else DONE

    def _number(self, b: int) -> bool:
        mode = self.mode
        if b in DIGITS:
            if mode == MINUS:
                self.mode = ZERO if b == ord("0") else INT
            elif mode == ZERO:
                return False  # no leading zeros
            elif mode == FRAC0:
                self.mode = FRAC
            elif mode in (EXP0, EXPSIGN):
                self.mode = EXP
            return True
        if b == ord(".") and mode in (ZERO, INT):
            self.mode = FRAC0
            return True
        if b in b"eE" and mode in (ZERO, INT, FRAC):
            self.mode = EXP0
            return True
        if b in b"+-" and mode == EXP0:
            self.mode = EXPSIGN
            return True
        if mode not in _NUM_END:
            return False
        self.mode = self._after_value()  # the number ended; this byte belongs to what follows
        return self._byte(b)

    # -- closing ----------------------------------------------------------------------------------
    def _closing_byte(self) -> int:
        mode = self.mode
        if mode == STRING:
            return 0x22
        if mode == ESCAPE:
            return ord("n")
        if mode in (UNICODE, MINUS, FRAC0, EXP0, EXPSIGN):
            return ord("0")
        if mode == LITERAL:
            return self.pending[0]
        if mode == VALUE:
            return ord("{") if not self.stack else ord("0")
        if mode == ARR_FIRST:
            return ord("]")
        if mode == OBJ_FIRST:
            return ord("}")
        if mode == OBJ_KEY:
            return 0x22
        if mode == COLON:
            return ord(":")
        # AFTER or a finished number: close the innermost container
        return ord("}") if self.stack[-1] == ord("{") else ord("]")

    def completion(self) -> bytes:
        """The shortest-by-construction text that turns the current prefix into a complete object."""
        state, out = self.copy(), bytearray()
        while not state.done:
            b = state._closing_byte()
            if not state._byte(b):  # cannot happen for a consistent state
                raise RuntimeError("JSON completion failed")
            out.append(b)
        return bytes(out)
