#!/usr/bin/perl
# The output disk's floor for an image: how long writing the image's bytes
# takes, laid out as in the image (every data extent at its offset, holes
# left as holes) and synced, with nothing to read or compute first. The bytes
# are loaded into memory before the clock starts.
#
#   write-floor.pl IMAGE SCRATCH   prints the seconds (writes, truncate, fsync)
use strict;
use warnings;
use Fcntl qw(O_WRONLY O_CREAT O_TRUNC O_RDONLY SEEK_SET);
use IO::Handle;
use Time::HiRes qw(time);

my ($image, $scratch) = @ARGV;
die "usage: write-floor.pl IMAGE SCRATCH\n" unless defined $scratch;
use constant { SEEK_DATA => 3, SEEK_HOLE => 4 };

sysopen(my $in, $image, O_RDONLY) or die "write-floor: $image: $!\n";
my $size = -s $in;
my @extents;    # [offset, bytes]
my $at = 0;
while ($at < $size) {
  my $data = sysseek($in, $at, SEEK_DATA);
  last unless defined $data;    # ENXIO: no data past $at
  my $hole = sysseek($in, $data, SEEK_HOLE);
  die "write-floor: $image: SEEK_HOLE at $data: $!\n" unless defined $hole;
  $hole = $size if $hole > $size;
  my $buf = '';
  sysseek($in, $data, SEEK_SET) or die "write-floor: $image: seek to $data: $!\n";
  my $got = sysread($in, $buf, $hole - $data);
  die "write-floor: $image: short read at $data\n" unless defined $got && $got == $hole - $data;
  push @extents, [$data, $buf];
  $at = $hole;
}
close $in;

system('sync') == 0 or die "write-floor: sync failed\n";
if (open(my $drop, '>', '/proc/sys/vm/drop_caches')) {
  print $drop "3\n";
  close $drop;
}

my $start = time;
sysopen(my $out, $scratch, O_WRONLY | O_CREAT | O_TRUNC, 0644) or die "write-floor: $scratch: $!\n";
for my $e (@extents) {
  sysseek($out, $e->[0], SEEK_SET) or die "write-floor: $scratch: seek to $e->[0]: $!\n";
  my $put = syswrite($out, $e->[1]);
  die "write-floor: $scratch: write at $e->[0]: $!\n" unless defined $put && $put == length $e->[1];
}
truncate($out, $size) or die "write-floor: $scratch: truncate: $!\n";
$out->sync or die "write-floor: $scratch: fsync: $!\n";
my $seconds = time - $start;
close $out or die "write-floor: $scratch: close: $!\n";
unlink $scratch;
printf "%.2f %d\n", $seconds, scalar @extents;
