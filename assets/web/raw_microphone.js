// Ask the browser for the microphone's raw signal. Gradio requests `{audio: true}`, which in
// Chrome and Firefox turns on echo cancellation, noise suppression and automatic gain control:
// tuned for calls, they reshape a short spoken word (a keyword's onset, its loudness) before the
// model hears it, and the model was trained on unprocessed recordings. Every audio request made
// by the page gets the three switched off; a caller that names them explicitly keeps its choice.
(() => {
  const media = navigator.mediaDevices;
  if (!media || !media.getUserMedia || media.getUserMedia.rawMicrophone) return;
  const original = media.getUserMedia.bind(media);
  const RAW = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
  const wrapped = (constraints = {}) => {
    const audio = constraints.audio;
    if (audio) {
      const asked = typeof audio === "object" ? audio : {};
      constraints = { ...constraints, audio: { ...RAW, ...asked } };
    }
    return original(constraints).then((stream) => {
      const track = stream.getAudioTracks()[0];
      window.microphoneSettings = track ? track.getSettings() : null; // for tests and the curious
      return stream;
    });
  };
  wrapped.rawMicrophone = true;
  media.getUserMedia = wrapped;
})();
