/**
 * `KeyboardEvent.code` (W3C UI Events KeyboardEvent code values) to X11
 * keysyms, for injecting the physical key a client pressed.
 *
 * A code names a key position, not a character; each maps to the keysym the
 * US QWERTY layout gives that position at its base level. The injector
 * presses whichever host keycode carries that keysym, and the host's
 * modifier state then decides the character. On a host with a US-like layout
 * that is the same physical key; on other layouts the keysym wins (KeyQ types
 * "q" on an AZERTY host). Values are from X11/keysymdef.h, X11/XF86keysym.h
 * and X11/Sunkeysym.h. Codes with no X keysym (Fn, FnLock, the phone-style
 * numpad memory keys) are absent, and `keysymForCode` returns undefined for
 * them.
 *
 * @module
 */

/** Every supported `KeyboardEvent.code` with its X keysym. */
export const KEYSYMS: Readonly<Record<string, number>> = Object.freeze({
  // Writing system keys (the US QWERTY base keysym of each position)
  KeyA: 0x61, // a
  KeyB: 0x62, // b
  KeyC: 0x63, // c
  KeyD: 0x64, // d
  KeyE: 0x65, // e
  KeyF: 0x66, // f
  KeyG: 0x67, // g
  KeyH: 0x68, // h
  KeyI: 0x69, // i
  KeyJ: 0x6a, // j
  KeyK: 0x6b, // k
  KeyL: 0x6c, // l
  KeyM: 0x6d, // m
  KeyN: 0x6e, // n
  KeyO: 0x6f, // o
  KeyP: 0x70, // p
  KeyQ: 0x71, // q
  KeyR: 0x72, // r
  KeyS: 0x73, // s
  KeyT: 0x74, // t
  KeyU: 0x75, // u
  KeyV: 0x76, // v
  KeyW: 0x77, // w
  KeyX: 0x78, // x
  KeyY: 0x79, // y
  KeyZ: 0x7a, // z
  Digit0: 0x30, // 0
  Digit1: 0x31, // 1
  Digit2: 0x32, // 2
  Digit3: 0x33, // 3
  Digit4: 0x34, // 4
  Digit5: 0x35, // 5
  Digit6: 0x36, // 6
  Digit7: 0x37, // 7
  Digit8: 0x38, // 8
  Digit9: 0x39, // 9
  Backquote: 0x60, // grave
  Backslash: 0x5c, // backslash
  BracketLeft: 0x5b, // bracketleft
  BracketRight: 0x5d, // bracketright
  Comma: 0x2c, // comma
  Equal: 0x3d, // equal
  IntlBackslash: 0x3c, // less
  IntlRo: 0x4db, // kana_RO
  IntlYen: 0xa5, // yen
  Minus: 0x2d, // minus
  Period: 0x2e, // period
  Quote: 0x27, // apostrophe
  Semicolon: 0x3b, // semicolon
  Slash: 0x2f, // slash
  // Functional keys
  AltLeft: 0xffe9, // Alt_L
  AltRight: 0xffea, // Alt_R
  Backspace: 0xff08, // BackSpace
  CapsLock: 0xffe5, // Caps_Lock
  ContextMenu: 0xff67, // Menu
  ControlLeft: 0xffe3, // Control_L
  ControlRight: 0xffe4, // Control_R
  Enter: 0xff0d, // Return
  MetaLeft: 0xffeb, // Super_L
  MetaRight: 0xffec, // Super_R
  OSLeft: 0xffeb, // Super_L
  OSRight: 0xffec, // Super_R
  ShiftLeft: 0xffe1, // Shift_L
  ShiftRight: 0xffe2, // Shift_R
  Space: 0x20, // space
  Tab: 0xff09, // Tab
  Convert: 0xff23, // Henkan_Mode
  KanaMode: 0xff27, // Hiragana_Katakana
  Lang1: 0xff31, // Hangul
  Lang2: 0xff34, // Hangul_Hanja
  Lang3: 0xff26, // Katakana
  Lang4: 0xff25, // Hiragana
  Lang5: 0xff2a, // Zenkaku_Hankaku
  NonConvert: 0xff22, // Muhenkan
  // Control pad
  Delete: 0xffff, // Delete
  End: 0xff57, // End
  Help: 0xff6a, // Help
  Home: 0xff50, // Home
  Insert: 0xff63, // Insert
  PageDown: 0xff56, // Next
  PageUp: 0xff55, // Prior
  // Arrow pad
  ArrowDown: 0xff54, // Down
  ArrowLeft: 0xff51, // Left
  ArrowRight: 0xff53, // Right
  ArrowUp: 0xff52, // Up
  // Numpad (KP_ keysyms; the host's NumLock state decides digit or navigation, as on a real keyboard)
  NumLock: 0xff7f, // Num_Lock
  Numpad0: 0xffb0, // KP_0
  Numpad1: 0xffb1, // KP_1
  Numpad2: 0xffb2, // KP_2
  Numpad3: 0xffb3, // KP_3
  Numpad4: 0xffb4, // KP_4
  Numpad5: 0xffb5, // KP_5
  Numpad6: 0xffb6, // KP_6
  Numpad7: 0xffb7, // KP_7
  Numpad8: 0xffb8, // KP_8
  Numpad9: 0xffb9, // KP_9
  NumpadAdd: 0xffab, // KP_Add
  NumpadBackspace: 0xff08, // BackSpace
  NumpadClear: 0xff0b, // Clear
  NumpadComma: 0xffac, // KP_Separator
  NumpadDecimal: 0xffae, // KP_Decimal
  NumpadDivide: 0xffaf, // KP_Divide
  NumpadEnter: 0xff8d, // KP_Enter
  NumpadEqual: 0xffbd, // KP_Equal
  NumpadMultiply: 0xffaa, // KP_Multiply
  NumpadParenLeft: 0x28, // parenleft
  NumpadParenRight: 0x29, // parenright
  NumpadSubtract: 0xffad, // KP_Subtract
  // Function section
  Escape: 0xff1b, // Escape
  F1: 0xffbe, // F1
  F2: 0xffbf, // F2
  F3: 0xffc0, // F3
  F4: 0xffc1, // F4
  F5: 0xffc2, // F5
  F6: 0xffc3, // F6
  F7: 0xffc4, // F7
  F8: 0xffc5, // F8
  F9: 0xffc6, // F9
  F10: 0xffc7, // F10
  F11: 0xffc8, // F11
  F12: 0xffc9, // F12
  F13: 0xffca, // F13
  F14: 0xffcb, // F14
  F15: 0xffcc, // F15
  F16: 0xffcd, // F16
  F17: 0xffce, // F17
  F18: 0xffcf, // F18
  F19: 0xffd0, // F19
  F20: 0xffd1, // F20
  F21: 0xffd2, // F21
  F22: 0xffd3, // F22
  F23: 0xffd4, // F23
  F24: 0xffd5, // F24
  PrintScreen: 0xff61, // Print
  ScrollLock: 0xff14, // Scroll_Lock
  Pause: 0xff13, // Pause
  // Media and browser keys (XF86keysym.h)
  AudioVolumeDown: 0x1008ff11, // XF86AudioLowerVolume
  AudioVolumeMute: 0x1008ff12, // XF86AudioMute
  AudioVolumeUp: 0x1008ff13, // XF86AudioRaiseVolume
  VolumeDown: 0x1008ff11, // XF86AudioLowerVolume
  VolumeMute: 0x1008ff12, // XF86AudioMute
  VolumeUp: 0x1008ff13, // XF86AudioRaiseVolume
  BrowserBack: 0x1008ff26, // XF86Back
  BrowserFavorites: 0x1008ff30, // XF86Favorites
  BrowserForward: 0x1008ff27, // XF86Forward
  BrowserHome: 0x1008ff18, // XF86HomePage
  BrowserRefresh: 0x1008ff73, // XF86Reload (the keysym evdev maps give this key)
  BrowserSearch: 0x1008ff1b, // XF86Search
  BrowserStop: 0xff69, // Cancel (the keysym evdev maps give this key)
  Eject: 0x1008ff2c, // XF86Eject
  LaunchApp1: 0x1008ff33, // XF86MyComputer
  LaunchApp2: 0x1008ff1d, // XF86Calculator
  LaunchMail: 0x1008ff19, // XF86Mail
  MediaFastForward: 0x1008ff97, // XF86AudioForward
  MediaPause: 0x1008ff31, // XF86AudioPause
  MediaPlay: 0x1008ff14, // XF86AudioPlay
  MediaPlayPause: 0x1008ff14, // XF86AudioPlay
  MediaRecord: 0x1008ff1c, // XF86AudioRecord
  MediaRewind: 0x1008ff3e, // XF86AudioRewind
  MediaSelect: 0x1008ff32, // XF86AudioMedia
  MediaStop: 0x1008ff15, // XF86AudioStop
  MediaTrackNext: 0x1008ff17, // XF86AudioNext
  MediaTrackPrevious: 0x1008ff16, // XF86AudioPrev
  Power: 0x1008ff2a, // XF86PowerOff
  Sleep: 0x1008ff2f, // XF86Sleep
  WakeUp: 0x1008ff2b, // XF86WakeUp
  // Legacy editing keys (Sun-style keyboards; evdev maps them to these keysyms)
  Again: 0xff66, // Redo
  Copy: 0x1008ff57, // XF86Copy
  Cut: 0x1008ff58, // XF86Cut
  Find: 0xff68, // Find
  Open: 0x1008ff6b, // XF86Open
  Paste: 0x1008ff6d, // XF86Paste
  Props: 0x1005ff70, // SunProps
  Select: 0xff60, // Select
  Undo: 0xff65, // Undo
  Hyper: 0xffed, // Hyper_L
  Super: 0xffeb, // Super_L
});

/** The X keysym for a `KeyboardEvent.code` (e.g. "KeyA" → 0x61), or undefined when it has none. */
export function keysymForCode(code: string): number | undefined {
  return Object.hasOwn(KEYSYMS, code) ? KEYSYMS[code] : undefined;
}

/** Every `KeyboardEvent.code` this table knows. */
export function keyboardCodes(): string[] {
  return Object.keys(KEYSYMS);
}
