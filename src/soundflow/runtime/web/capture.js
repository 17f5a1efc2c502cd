// AudioWorklet: the microphone at the context's rate -> 16 kHz mono float32 frames for the server.
// Anti-alias low-pass (windowed sinc, cut-off just under the target Nyquist), then fractional resampling by
// linear interpolation between the filtered samples. Frames of `frameSamples` go to the page by postMessage.
class Downsampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, frameSamples = 1600 } = options.processorOptions || {};
    this.step = sampleRate / targetRate; // input samples per output sample (3 at 48 kHz)
    this.taps = this.lowpass(0.45 / this.step, 63);
    this.history = new Float32Array(this.taps.length); // ring of the last inputs, for the FIR
    this.pos = 0;
    this.prev = 0; // last filtered sample, for interpolation across blocks
    this.next = 0; // where the next output sample lies, in input samples from the block start
    this.frameSamples = frameSamples;
    this.frame = new Float32Array(frameSamples);
    this.filled = 0;
  }

  lowpass(cutoff, n) { // cutoff in cycles per input sample; Blackman window; unit gain at DC
    const h = new Float32Array(n), m = (n - 1) / 2;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const x = i - m;
      const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
      const w = 0.42 - 0.5 * Math.cos(2 * Math.PI * i / (n - 1)) + 0.08 * Math.cos(4 * Math.PI * i / (n - 1));
      h[i] = sinc * w;
      sum += h[i];
    }
    return h.map((v) => v / sum);
  }

  filter(sample) {
    this.history[this.pos] = sample;
    this.pos = (this.pos + 1) % this.history.length;
    let acc = 0;
    for (let i = 0, j = this.pos; i < this.taps.length; i++, j = (j + 1) % this.history.length) {
      acc += this.taps[i] * this.history[j];
    }
    return acc;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no microphone data in this quantum
    const n = channels[0].length;
    for (let i = 0; i < n; i++) {
      let mono = 0; // average the channels: the model hears one
      for (const ch of channels) mono += ch[i];
      const y = this.filter(mono / channels.length);
      // output samples that fall between the previous filtered sample (i - 1) and this one (i)
      while (this.next <= i) {
        const frac = this.next - (i - 1);
        this.emit(this.prev + (y - this.prev) * frac);
        this.next += this.step;
      }
      this.prev = y;
    }
    this.next -= n;
    return true;
  }

  emit(sample) {
    this.frame[this.filled++] = sample;
    if (this.filled === this.frameSamples) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]); // transferred: the array is detached now
      this.frame = new Float32Array(this.frameSamples);
      this.filled = 0;
    }
  }
}

registerProcessor("downsampler", Downsampler);
