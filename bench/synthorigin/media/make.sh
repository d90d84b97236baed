#!/bin/sh
# make.sh regenerates the committed demo media from the same 15 s source: 320x180 testsrc with its running counter
# and a 1 kHz tone, H.264 baseline (one keyframe every 3 s) + AAC.
#
#   seg0.ts .. seg4.ts  5 x 3 s MPEG-TS, one keyframe per segment so each file decodes on its own. Timestamps run
#                       on across the five files; the origin marks the loop wrap with #EXT-X-DISCONTINUITY.
#   ll.mp4              the same loop as fragmented MP4 for LL-HLS: ftyp+moov (the EXT-X-MAP init segment), then
#                       75 moof+mdat fragments of 0.2 s (5 frames), so every 3 s segment is 15 fragments starting
#                       on a keyframe and a part is a run of whole fragments. The origin shifts the fragments'
#                       decode times by 15 s per pass, so the loop must last 15 s exactly: the audio is encoded
#                       first into an MP4 and copied with its edit list ignored, which keeps the AAC priming from
#                       delaying the video's first frame (an ADTS file would leave the init segment without its
#                       AudioSpecificConfig), and cut at 703 frames (15 s less 2.7 ms: AAC frames cannot add up
#                       to 15 s).
#                       default_base_moof makes each fragment addressable on its own; skip_trailer leaves out the
#                       mfra index, which live players do not use.
set -eu
cd "$(dirname "$0")"
rm -f seg*.ts ll.mp4 ll-audio.m4a
video="-f lavfi -i testsrc=size=320x180:rate=25:duration=15"
audio="-f lavfi -i sine=frequency=1000:sample_rate=48000:duration=15"
x264="-c:v libx264 -preset veryfast -profile:v baseline -pix_fmt yuv420p -b:v 120k -maxrate 150k -bufsize 300k
  -g 75 -keyint_min 75 -sc_threshold 0 -force_key_frames expr:gte(t,n_forced*3)"
aac="-c:a aac -b:a 48k -ac 1"
# shellcheck disable=SC2086 # the option lists are meant to split
ffmpeg -hide_banner -loglevel error -y $video $audio $x264 $aac -map 0:v -map 1:a \
  -f segment -segment_time 3 -segment_format mpegts -reset_timestamps 0 seg%d.ts
# shellcheck disable=SC2086
ffmpeg -hide_banner -loglevel error -y $audio $aac -frames:a 703 ll-audio.m4a
# The video track leads the interleaving, so fragments are cut every 5 video frames exactly.
# shellcheck disable=SC2086
ffmpeg -hide_banner -loglevel error -y $video -ignore_editlist 1 -i ll-audio.m4a $x264 -c:a copy -map 0:v -map 1:a \
  -f mp4 -movflags empty_moov+default_base_moof+skip_trailer -frag_duration 200000 ll.mp4
rm -f ll-audio.m4a
ls -l seg*.ts ll.mp4
