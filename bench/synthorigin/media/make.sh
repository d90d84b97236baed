#!/bin/sh
# make.sh regenerates the committed demo segments: 5 x 3 s MPEG-TS (H.264 + AAC), 320x180 testsrc with its running
# counter and a 1 kHz tone, one keyframe per segment so each file decodes on its own. Timestamps run on across the
# five files; the origin marks the loop wrap with #EXT-X-DISCONTINUITY.
set -eu
cd "$(dirname "$0")"
rm -f seg*.ts
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc=size=320x180:rate=25:duration=15" \
  -f lavfi -i "sine=frequency=1000:sample_rate=48000:duration=15" \
  -c:v libx264 -preset veryfast -profile:v baseline -pix_fmt yuv420p -b:v 120k -maxrate 150k -bufsize 300k \
  -g 75 -keyint_min 75 -sc_threshold 0 -force_key_frames "expr:gte(t,n_forced*3)" \
  -c:a aac -b:a 48k -ac 1 \
  -f segment -segment_time 3 -segment_format mpegts -reset_timestamps 0 -map 0:v -map 1:a \
  seg%d.ts
ls -l seg*.ts
