# The module's POD is well formed and documents every exported function.
use strict;
use warnings;
use Test::More;
use Pod::Checker qw(podchecker);
use Image::Magick::DPC;

my $pm = $INC{'Image/Magick/DPC.pm'};
open my $null, '>', '/dev/null' or die "/dev/null: $!\n";
is(podchecker($pm, $null, -warnings => 2), 0, 'podchecker: no errors');
my $checker = Pod::Checker->new(-warnings => 2, -quiet => 1);
$checker->parse_from_file($pm, $null);
is($checker->num_warnings, 0, 'podchecker: no warnings');
open my $fh, '<', $pm or die "$pm: $!\n";
my @heads = map { /^=head2 (\w+)\(/ ? $1 : () } <$fh>;
for my $function (@Image::Magick::DPC::EXPORT_OK) {
    ok((grep { $_ eq $function } @heads), "$function has its =head2");
}
like(join('', `podchecker $pm 2>&1`), qr/pod syntax OK/, 'as podchecker(1) says')
    if -x '/usr/bin/podchecker';
done_testing();
